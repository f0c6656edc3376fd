"""httpd-operator: Apache httpd sites whose content lives on cluster storage."""

GROUP = "httpd.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "HttpdSite"
PLURAL = "httpdsites"

__version__ = "0.1.0"
