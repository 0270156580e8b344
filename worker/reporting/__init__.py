"""Coverage proof, deadline clocks and reports."""
