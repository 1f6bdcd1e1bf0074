"""`movie-recs lambda-fit`: measuring, on this machine, why this service is not a Lambda function.

Small modules, one thing each: `limits` (AWS's numbers), `catalog` (synthetic and MovieLens
stores), `deps` (dependency sizes), `probe` (one simulated Lambda instance in a fresh process),
`container` (the real server as a subprocess), `plots`, `report`, and `run` (the command).
"""
