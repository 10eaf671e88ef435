"""Data checkers that run job definitions over data (``csv``: a CSV file against an
ODCS contract), recording the outcome through the public registry API."""
