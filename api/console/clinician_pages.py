"""The clinician's pages, for the console to install (docs/console.md)."""

from api.console import clinician, clinician_consents, clinician_entries, clinician_trend

CLINICIAN_ROUTERS = (
    clinician.router,
    clinician_consents.router,
    clinician_entries.router,
    clinician_trend.router,
)
