"""Pictures of predictions, written to PNG with matplotlib (Agg backend)."""

import matplotlib

matplotlib.use("Agg")
