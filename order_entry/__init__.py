"""order_entry: validates orders against the latest quotes of its tradable symbols."""
