"""Process-level runtime pieces shared by the worker, the scheduler and the web app."""
