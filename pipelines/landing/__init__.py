"""Files arriving in the landing zone: a manifest taking each file once, checks, quarantine."""
