"""The model learns from what the service sees (`movie-recs retrain`): the training dataset read
from the live store at one cut (`dataset.py`), the candidate scored against the serving model
on the same split (`gate.py`), and the run that publishes, warms the vector cache and promotes
(`retrain.py`; its command in `commands.py`). Decision 25 says why."""
