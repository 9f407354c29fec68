"""http_api: the HTTP API and live dashboard over the services' caches (``python -m http_api``).

Reads the services' caches (their Redis) as a shared store and talks to order_entry only
through Kafka (``orders.commands`` / ``orders.events``). ``config`` (settings), ``server``
(uvicorn under a Lifecycle), ``backend`` (what the routes use), one module per resource
(``quotes``, ``orders``, ``positions``, ``lag``, ``stream``), ``errors`` and ``static/`` (the
dashboard: plain ES modules, no build step).
"""
