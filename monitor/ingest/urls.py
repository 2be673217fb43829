"""URL normalisation for deduplication: the same article behind different tracking links is one item.

`clean_url` is what items carry (tracking parameters and fragment removed, host lower-cased, default port
dropped); `canonical_url` is the dedupe key, which also ignores http vs https and a leading `www.`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameters that only say where a click came from; the article is the same without them.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_hsenc", "_hsmi",
        "mkt_tok", "cmpid", "s_cid", "ncid", "ocid", "ref_src", ".tsrc", "__source", "guccounter",
        "guce_referrer", "guce_referrer_sig", "sr_share", "taid", "cid", "smid",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking(name: str) -> bool:
    """True for query parameters that only track the click (utm_*, fbclid, ...)."""
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def clean_url(url: str) -> str:
    """The URL without tracking parameters or fragment, host lower-cased, default port dropped.

    Remaining query parameters are sorted, so their order in the feed does not matter. Anything that is not
    an http(s) URL is returned stripped but otherwise unchanged.
    """
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.rstrip(".")
    if parts.port and parts.port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{parts.port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k))
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def canonical_url(url: str) -> str:
    """The dedupe key of a URL: `clean_url`, with https for http and without a leading `www.`."""
    cleaned = clean_url(url)
    parts = urlsplit(cleaned)
    if parts.scheme not in _DEFAULT_PORTS:
        return cleaned
    netloc = parts.netloc.removeprefix("www.")
    return urlunsplit(("https", netloc, parts.path, parts.query, ""))


def host_of(url: str) -> str:
    """The lower-cased hostname (rate limits and robots.txt are per host)."""
    return (urlsplit(url).hostname or "").lower()


_SECRET_WORDS = ("key", "token", "secret", "sig", "password", "auth", "session")


def redact(url: str) -> str:
    """The URL for logs and errors: credentials and secret-looking query values replaced by ***."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    query = [(k, "***" if any(w in k.lower() for w in _SECRET_WORDS) else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(query, safe="*"), ""))
