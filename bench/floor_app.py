"""The floor of the HTTP benchmark: a bare Flask app that JSON-parses the body and answers one fixed card."""

from flask import Flask, jsonify, request

app = Flask(__name__)
CARD = {"summary": "Fixed card", "indicator": "info", "source": {"label": "floor"}}


@app.post("/cds-services/<service_id>")
def call(service_id: str):
    request.get_json()
    return jsonify({"cards": [CARD]})
