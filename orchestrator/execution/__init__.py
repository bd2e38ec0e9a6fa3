"""Execution: adapters (paper, ccxt), routing, order planning, the portfolio."""
