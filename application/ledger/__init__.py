"""The event ledger: where a write's transaction begins and ends.

The batcher commits writes and access records together.
"""
