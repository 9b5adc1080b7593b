"""Provider adapters: verify a webhook, parse it into a typed payload, make a command.

Adapters translate; they never decide. Whether a carrier error code or a bounce
reason changes a contact's DND is the domain policy's call, so every signal the
providers send is passed through, and only payloads that carry no consent signal
at all come back as :class:`~dnd_ledger.providers.outcomes.Ignored`.

Malformed input of any kind raises :class:`~dnd_ledger.providers.payload.PayloadError`
and nothing else; a refused signature raises a
:class:`~dnd_ledger.providers.signatures.SignatureError` (or, for Twilio, returns False).
"""
