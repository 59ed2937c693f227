"""`gen prepare`: real labelled sets that PyPI packages ship, written as image folders."""
