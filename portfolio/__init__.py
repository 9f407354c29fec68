"""portfolio: keeps positions and marks them to market with the quotes of the symbols it holds."""
