from lambdafit.cli import app

app(prog_name="python -m lambdafit")
