"""Charts: registering patients, reading their charts, rendering disclosures, erasure."""
