"""rdns-scorer: reverse-DNS, HELO and MAIL FROM scoring for rspamd and SpamAssassin."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rdns-scorer")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
