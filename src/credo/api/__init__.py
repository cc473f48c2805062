"""The HTTP API (`/v1`): thin FastAPI routers over the services."""
