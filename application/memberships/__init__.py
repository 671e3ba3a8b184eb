"""Memberships: enrolment, renewal, and what follows when a sponsor stops."""
