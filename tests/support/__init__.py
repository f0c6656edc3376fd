"""What the suites share, as `from support import ...` (pytest puts tests/ on the path): the
repository's paths and CRDs, one builder of a site's body, the emulated API's client, and
polling with a deadline (the only way a test waits)."""

from support.emulated import Api
from support.objects import CRD, ROOT, SERVICE_MONITOR_CRD, SITES, site
from support.polling import eventually, wait_until

__all__ = ["CRD", "ROOT", "SERVICE_MONITOR_CRD", "SITES", "Api", "eventually", "site", "wait_until"]
