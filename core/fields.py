"""The lead's field vocabulary, shared by every stage: the person's own fields, the other sources
a rule or a field map may read, and how a company's domain is derived. A leaf: it imports
nothing of ours, so the models of mapping, leads and delivery can all use it."""

# The person's own fields, as every mapping targets them and every CRM field map reads them.
LEAD_FIELDS = ("email", "first_name", "last_name", "phone", "company", "country")

# Consent goes to explicit fields of its own (never to a CRM's opt-out flag, whose default
# would read as an answer); a lead without an answer sends nothing for them.
CONSENT_FIELDS = ("marketing_opt_in", "consent_at", "consent_text", "consent_source")
CONSENT_SOURCES = frozenset(CONSENT_FIELDS)

# Sources a field map may name besides the lead's own columns.
OWNER_SOURCES = ("owner.name", "owner.email", "owner.hubspot_owner_id", "owner.salesforce_user_id")
EXTRA_SOURCES = ("domain", "company_name", "external_id", "team", "lifecycle_stage", "score", *OWNER_SOURCES,
                 *CONSENT_FIELDS)
# Sources that hold a JSON object of named values: attributes.<name> and so on.
NESTED_SOURCES = ("attributes", "attribution", "first_touch")

# Domains of free mail providers: a person's address there says nothing about their company.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "hotmail.com", "hotmail.co.uk",
    "outlook.com", "live.com", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "gmx.com", "gmx.de",
    "gmx.net", "web.de", "proton.me", "protonmail.com", "pm.me", "mail.com", "yandex.ru", "yandex.com",
    "mail.ru", "qq.com", "163.com", "126.com", "zoho.com", "fastmail.com", "hey.com", "t-online.de",
    "orange.fr", "free.fr", "laposte.net", "libero.it", "seznam.cz", "wp.pl", "o2.pl", "naver.com",
})


def source_error(source: str, *, extra: tuple[str, ...] = EXTRA_SOURCES) -> str:
    """'' when `source` names a lead field, one of `extra`, or an attributes.<name>,
    attribution.<name> (last touch) or first_touch.<name> value: what a field map, a scoring
    rule or a territory rule may read."""
    head, _, name = source.partition(".")
    if source in (*LEAD_FIELDS, *extra) or (head in NESTED_SOURCES and name):
        return ""
    return (f"Use one of {', '.join((*LEAD_FIELDS, *extra))}, attributes.<name>, attribution.<name> "
            "or first_touch.<name>.")


def bare_domain(value: str) -> str:
    """'https://www.ACME.com/about' -> 'acme.com'."""
    value = value.strip().lower()
    for prefix in ("https://", "http://"):
        value = value.removeprefix(prefix)
    return value.removeprefix("www.").split("/", 1)[0]


def company_domain(*, email: str, attributes: dict) -> str:
    """The company's domain: an explicit company domain or website, else the email's domain
    unless it is a free-mail provider's ('' when there is none)."""
    explicit = str(attributes.get("company_domain") or attributes.get("website") or "")
    if explicit.strip():
        return bare_domain(explicit)
    domain = email.rpartition("@")[2].strip().lower()
    return "" if not domain or domain in FREE_MAIL_DOMAINS else domain
