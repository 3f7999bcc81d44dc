"""Files arriving in the landing zone: the manifest that takes each file once, file checks, archive and quarantine."""
