"""Know whether recommendations work: what each user was shown (exposures), which events those
lists led to (attribution), and experiments that split users between variants, with a report
whose statistics are proven calibrated (docs/decisions/0027-exposures-attribution-experiments.md).
"""
