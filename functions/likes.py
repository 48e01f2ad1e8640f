"""AWS Lambda entry point of the like function: ``POST`` and ``DELETE /api/photos/{id}/like`` only, the hottest
path, so that its cold start loads and builds no more than a like needs (bench/coldstart.py measures both)."""

from core.gc_tuning import building_without_collections

with building_without_collections():
    from core.api.app import create_app
    from core.api.routes import likes
    from core.runtime import renew_on_snapstart_restore
    from core.serverless import http_handler

    app = create_app(routers=[likes.router])
    renew_on_snapstart_restore(app.state.runtime)
    handler = http_handler(app)
