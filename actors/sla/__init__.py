"""SLAs: the clock actor and its timers (``sla_clock``), business-hours arithmetic
(``business_time``) and the per-priority policies as the SCDB holds them (``policy``)."""
