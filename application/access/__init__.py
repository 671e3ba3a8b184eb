"""Who may see what, and the record of every look.

Policy, the chart gate, access records, audit queries and replay.
"""
