"""Alerting: rules (YAML, validated), lifecycle decisions (pure), the evaluator that writes them, notifiers and
the service that schedules it all."""
