"""Where sweeps record by default: databases in the working directory."""

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow
DEFAULT_STORAGE = "sqlite:///optuna.db"  # Optuna
