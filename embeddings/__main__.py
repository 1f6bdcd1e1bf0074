"""`python -m embeddings train|evaluate|add-numpy-towers`: the same commands as `movie-recs`,
without `service`.

The image's training stage runs this with only `embeddings/` and `data/` copied, so a change to
the service (or the README) does not retrain the model in the image build.
"""

from __future__ import annotations

import typer

from embeddings.cli import add_numpy_towers_command, evaluate_command, train_command

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train or evaluate the two-tower model."
)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("add-numpy-towers")(add_numpy_towers_command)

if __name__ == "__main__":
    app()
