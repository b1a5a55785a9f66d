"""The process keeper: the API and a host's workers, each restarted when it dies (`python -m service.supervise`)."""
