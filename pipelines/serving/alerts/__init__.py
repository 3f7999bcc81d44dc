"""Alerts: the rules that say what needs action now (one home, shared by the ``alerts`` job and
the page's "Needs attention"), the ``alerts`` collection that keeps each alert from its opening
to its closing, and the webhook and mail that carry a transition off the page."""
