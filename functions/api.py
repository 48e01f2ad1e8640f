"""AWS Lambda entry point of the HTTP API (API Gateway HTTP API v2 or REST v1 events)."""

from core.gc_tuning import building_without_collections

with building_without_collections():
    from core.api.app import create_app
    from core.runtime import renew_on_snapstart_restore
    from core.serverless import http_handler

    app = create_app()
    renew_on_snapstart_restore(app.state.runtime)
    handler = http_handler(app)
