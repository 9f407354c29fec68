"""The simulated order flow: random orders from simulated accounts, paced, on orders.commands."""
