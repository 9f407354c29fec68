"""marketfeed: the command-line front end that runs, queries and measures the whole system."""
