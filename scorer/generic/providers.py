"""Curated, versioned list of known large-sender outbound name suffixes.

Big senders name their outbound relays with octets or counters that look generic to an
address matcher (``69-171-232-143.mail-mail.facebook.com``, ``out203-205-221-190.mail.qq.com``,
``a27-12.smtp-out.amazonses.com``). A name under one of these suffixes is never generic,
but only when it is forward-confirmed: anyone can write any PTR for their own addresses, so
an unconfirmed ``1-2-3-4.mail-mail.facebook.com`` gets no exemption and is classified
normally.

Maintenance rules (see docs/generic-ptr.md):

* one :class:`Provider` per suffix, with the operator and where the naming was observed;
* keep suffixes as narrow as the provider's outbound naming allows (e.g.
  ``outbound.protection.outlook.com``, not ``outlook.com``), and never list a domain whose
  names are assigned to customers (``amazonaws.com``, ``googleusercontent.com``);
* bump :data:`PROVIDERS_VERSION` (``YYYY.MM.N``) on every change and add a corpus row to
  ``tests/data/generic_ptr.tsv``.
"""

from __future__ import annotations

from dataclasses import dataclass

PROVIDERS_VERSION = "2026.11.1"


@dataclass(frozen=True, slots=True)
class Provider:
    """An outbound-mail name suffix of a known sender."""

    suffix: str
    operator: str
    source: str  # where the naming scheme was observed / why the suffix is safe to list


PROVIDERS: tuple[Provider, ...] = (
    # --- mailbox providers --------------------------------------------------------------
    Provider("google.com", "Google", "Gmail/Workspace relays mail-<pool>-f<n>.google.com"),
    Provider("googlemail.com", "Google", "legacy Gmail relays *.googlemail.com"),
    Provider(
        "outbound.protection.outlook.com",
        "Microsoft",
        "Exchange Online / Outlook.com egress mail-<dc>on<n>.outbound.protection.outlook.com",
    ),
    Provider("yahoo.com", "Yahoo", "Yahoo/AOL egress sonic<n>.consmr.mail.<dc>.yahoo.com"),
    Provider("yahoodns.net", "Yahoo", "Yahoo egress *.mail.<dc>.yahoodns.net"),
    Provider("mail.ru", "VK (Mail.ru)", "egress f<n>.i.mail.ru / smtp<n>.i.mail.ru"),
    Provider("mail.yandex.net", "Yandex", "egress forward<n>.mail.yandex.net"),
    Provider("me.com", "Apple", "iCloud egress <pod>p00im-<id>.me.com"),
    Provider("icloud.com", "Apple", "iCloud egress *.mail.icloud.com"),
    Provider("protonmail.ch", "Proton", "egress mail-<n>.protonmail.ch"),
    Provider("zoho.com", "Zoho", "egress sender<n>-of-o<n>.zoho.com"),
    Provider("zohomail.com", "Zoho", "Zoho Mail egress"),
    Provider("zoho.eu", "Zoho", "EU data-centre egress *.zoho.eu"),
    Provider("qq.com", "Tencent", "QQ/Foxmail egress out<a-b-c-d>.mail.qq.com (full IP)"),
    Provider("gmx.net", "United Internet", "GMX egress mout.gmx.net"),
    Provider("web.de", "United Internet", "WEB.DE egress mout.web.de"),
    # --- social networks ----------------------------------------------------------------
    Provider("facebook.com", "Meta", "notifications <a-b-c-d>.mail-mail.facebook.com (full IP)"),
    Provider("fb.com", "Meta", "Meta corporate and notification egress"),
    # --- email service providers ----------------------------------------------------------
    Provider("amazonses.com", "Amazon SES", "egress a<c>-<d>.smtp-out.amazonses.com"),
    Provider("sendgrid.net", "Twilio SendGrid", "egress o<n>.ptr<n>.sendgrid.net"),
    Provider("mcsv.net", "Mailchimp", "egress mail<n>.<pop><n>.mcsv.net"),
    Provider("mcdlv.net", "Mailchimp", "egress mail<n>.<pop><n>.mcdlv.net"),
    Provider("rsgsv.net", "Mailchimp", "egress mail<n>.<pop><n>.rsgsv.net"),
    Provider(
        "mandrillapp.com", "Mailchimp Transactional", "egress mail<c>-<d>.<pop>.mandrillapp.com"
    ),
    Provider("sparkpostmail.com", "SparkPost (Bird)", "egress mta<n>.<pop>.sparkpostmail.com"),
    Provider("mailgun.net", "Mailgun (Sinch)", "egress m<c>-<d>.mailgun.net"),
    Provider("mailgun.org", "Mailgun (Sinch)", "egress <x><c>-<d>.mailgun.org"),
    Provider(
        "exacttarget.com", "Salesforce Marketing Cloud", "egress mta<n>.<pop>.exacttarget.com"
    ),
    Provider("salesforce.com", "Salesforce", "platform egress *.mta.salesforce.com"),
    Provider("mailjet.com", "Mailjet (Sinch)", "egress o<n>.p<n>.mailjet.com"),
    Provider("mtasv.net", "Postmark (ActiveCampaign)", "egress <pop>-mta<n>.mtasv.net"),
    Provider("postmarkapp.com", "Postmark (ActiveCampaign)", "Postmark owned domain"),
    Provider("cmail19.com", "Campaign Monitor", "egress mail<n>.<pop>.cmail19.com"),
    Provider("cmail20.com", "Campaign Monitor", "egress mail<n>.<pop>.cmail20.com"),
    Provider("constantcontact.com", "Constant Contact", "egress ccm<n>.constantcontact.com"),
    # --- security gateways relaying customer mail ---------------------------------------
    Provider("pphosted.com", "Proofpoint", "egress mx0<x>-<id>.pphosted.com"),
    Provider("mimecast.com", "Mimecast", "egress <region>-smtp-<n>.mimecast.com"),
    Provider("messagelabs.com", "Broadcom (Symantec.cloud)", "egress mail<n>.<dc>.messagelabs.com"),
)

_BY_SUFFIX: dict[str, Provider] = {provider.suffix: provider for provider in PROVIDERS}
_MAX_SUFFIX_LABELS = max(provider.suffix.count(".") + 1 for provider in PROVIDERS)


def find_provider(name: str) -> Provider | None:
    """Return the provider whose suffix ``name`` (normalised, lower-case) is or ends with."""
    # Only the last few labels can match; looking at just those keeps long names cheap.
    labels = name.rsplit(".", _MAX_SUFFIX_LABELS)[-_MAX_SUFFIX_LABELS:]
    for start in range(len(labels) - 1):  # a one-label suffix would be a TLD: never listed
        provider = _BY_SUFFIX.get(".".join(labels[start:]))
        if provider is not None:
            return provider
    return None
