"""Phone calls understood: caller numbers and the telephony provider's webhook.

- ``numbers`` phone numbers parsed (``phonenumbers``) into E.164, the one form the desk stores
  and compares; refusing what is not a valid number.
- ``webhook`` the signed events of ``POST /api/v1/calls/events`` (``call.started``,
  ``call.ended``): the HMAC-SHA256 signature and its 5-minute window checked, the body validated
  into a typed event, or a refusal with a stable code.

Pure functions and pydantic models: no actor, no database, no network. The gateway's route and
the call log build on them.
"""
