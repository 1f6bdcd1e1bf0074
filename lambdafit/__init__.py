"""`python -m lambdafit`: measuring, on this machine, why this service is not a Lambda function.

Small modules, one thing each: `limits` (AWS's numbers), `catalog` (synthetic and MovieLens
stores), `deps` (dependency sizes), `probe` (one simulated Lambda instance in a fresh process),
`container` (the real server as a subprocess), `handler` (the recommender as a Lambda function
would be written), `plots`, `report`, `run` (the measuring) and `cli` (the command). Not part of
the service: not in the wheel or the image.
"""
