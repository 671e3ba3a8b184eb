"""The clinic's model: Patient, Membership, Consent and SponsorProgramme aggregates.

Pure Python on top of ``eventsourcing.domain``. Nothing here reads a clock, a request
or a database: time and actor arrive in a :class:`~domain.values.Provenance`.
"""
