"""Writes alerts.test.yml (promtool test rules) from the cases below and the annotations of
../rules/alerts.yml, rendered with each case's labels: after editing an alert's annotations,
run `local/.venv/bin/python3 infra/observability/tests/generate_alert_tests.py` from the repository
root and check the diff of alerts.test.yml (then `promtool test rules` it).
"""
import re, sys, yaml
rules = yaml.safe_load(open('infra/observability/rules/alerts.yml'))
alerts = {r['alert']: r for g in rules['groups'] for r in g['rules'] if 'alert' in r}

def lab(job, stage='prod', **kw):
    base = dict(job=job, stage=stage, faas_name=job, cloud_provider='aws', cloud_region='us-east-1')
    base.update(kw)
    return ','.join(f'{k}="{v}"' for k, v in base.items())

def s(metric, job, values, stage='prod', **kw):
    return {'series': f'{metric}{{{lab(job, stage, **kw)}}}', 'values': values}

def render(t, labels, value):
    t = re.sub(r'\{\{ \$labels\.(\w+) \}\}', lambda m: labels[m.group(1)], t)
    t = t.replace('{{ $value }}', value if value is not None else '{{ $value }}')
    assert '{{' not in t, t
    return t

def fires(name, labels, value=None):
    a = alerts[name]
    full = dict(labels); full.update(a['labels'])
    return {'exp_labels': full,
            'exp_annotations': {k: render(v, full, value) for k, v in a['annotations'].items()}}

G, D, E = 'signal-generator', 'trigger-dispatcher', 'pipeline-executor'
tests = []
def case(name, interval, series, alert_tests, promql=None):
    t = {'name': name, 'interval': interval, 'input_series': series, 'alert_rule_test': alert_tests}
    if promql: t['promql_expr_test'] = promql
    tests.append(t)

# ---------------------------------------------------------------- FunctionErrorRateHigh
case('one dispatcher invocation in ten fails in prod; the generator and dev are healthy', '1m', [
    s('faas_invocations_total', D, '0+10x20', trigger='pubsub'),
    s('faas_errors_total', D, '0+1x20', trigger='pubsub'),
    s('faas_invocations_total', G, '0+1x20', trigger='timer'),
    s('faas_errors_total', G, '0x20', trigger='timer'),
    s('faas_invocations_total', D, '0+10x20', stage='dev', trigger='pubsub'),
    s('faas_errors_total', D, '0x20', stage='dev', trigger='pubsub'),
], [
    {'eval_time': '4m', 'alertname': 'FunctionErrorRateHigh', 'exp_alerts': []},
    {'eval_time': '12m', 'alertname': 'FunctionErrorRateHigh',
     'exp_alerts': [fires('FunctionErrorRateHigh', {'job': D, 'stage': 'prod'})]},
], [{'expr': 'stage_job:faas_error_ratio:rate5m', 'eval_time': '12m', 'exp_samples': [
    {'labels': 'stage_job:faas_error_ratio:rate5m{job="signal-generator",stage="prod"}', 'value': 0},
    {'labels': 'stage_job:faas_error_ratio:rate5m{job="trigger-dispatcher",stage="dev"}', 'value': 0},
    {'labels': 'stage_job:faas_error_ratio:rate5m{job="trigger-dispatcher",stage="prod"}', 'value': 0.09999999999999999},
]}])
case('error rate under 5 % stays silent', '1m', [
    s('faas_invocations_total', E, '0+50x20', trigger='pubsub'),
    s('faas_errors_total', E, '0+1x20', trigger='pubsub'),
], [{'eval_time': '15m', 'alertname': 'FunctionErrorRateHigh', 'exp_alerts': []}])
case('every invocation fails but there are fewer than 3 in 5 minutes: below the minimum volume', '3m', [
    # one invocation every 3 minutes, each one failing: 100 % errors, under 2 per 5 minutes
    s('faas_invocations_total', E, '0+1x20', trigger='pubsub'),
    s('faas_errors_total', E, '0+1x20', trigger='pubsub'),
], [{'eval_time': '45m', 'alertname': 'FunctionErrorRateHigh', 'exp_alerts': []}],
[{'expr': 'stage_job:faas_error_ratio:rate5m', 'eval_time': '45m', 'exp_samples': [
    {'labels': 'stage_job:faas_error_ratio:rate5m{job="pipeline-executor",stage="prod"}', 'value': 1}]}])

# ---------------------------------------------------------------- PipelineFailureRateHigh
case('pipeline failure rate above 10 % in prod fires after 5 minutes; dev stays apart', '1m', [
    s('pipeline_executions_total', E, '0+9x20', status='completed'),
    s('pipeline_executions_total', E, '0+2x20', status='failed'),
    s('pipeline_executions_total', E, '0x20', status='skipped'),
    s('pipeline_executions_total', E, '0+20x20', stage='dev', status='completed'),
    s('pipeline_executions_total', E, '0x20', stage='dev', status='failed'),
], [
    {'eval_time': '4m', 'alertname': 'PipelineFailureRateHigh', 'exp_alerts': []},
    {'eval_time': '10m', 'alertname': 'PipelineFailureRateHigh',
     'exp_alerts': [fires('PipelineFailureRateHigh', {'stage': 'prod'})]},
], [{'expr': 'stage:pipeline_failure_ratio:rate5m', 'eval_time': '10m', 'exp_samples': [
        {'labels': 'stage:pipeline_failure_ratio:rate5m{stage="dev"}', 'value': 0},
        {'labels': 'stage:pipeline_failure_ratio:rate5m{stage="prod"}', 'value': 0.1818181818181818}]},
    {'expr': 'stage_status:pipeline_executions:rate5m{stage="prod"}', 'eval_time': '10m', 'exp_samples': [
        {'labels': 'stage_status:pipeline_executions:rate5m{stage="prod",status="completed"}', 'value': 0.15000000000000002},
        {'labels': 'stage_status:pipeline_executions:rate5m{stage="prod",status="failed"}', 'value': 0.03333333333333333},
        {'labels': 'stage_status:pipeline_executions:rate5m{stage="prod",status="skipped"}', 'value': 0}]}])
case('pipeline failure rate at 5 % stays silent (skipped runs are not failures)', '1m', [
    s('pipeline_executions_total', E, '0+15x20', status='completed'),
    s('pipeline_executions_total', E, '0+1x20', status='failed'),
    s('pipeline_executions_total', E, '0+4x20', status='skipped'),
], [{'eval_time': '15m', 'alertname': 'PipelineFailureRateHigh', 'exp_alerts': []}])
case('half the runs fail but only 2 runs in 5 minutes: below the minimum volume', '5m', [
    s('pipeline_executions_total', E, '0+1x12', status='completed'),
    s('pipeline_executions_total', E, '0+1x12', status='failed'),
], [{'eval_time': '55m', 'alertname': 'PipelineFailureRateHigh', 'exp_alerts': []}],
[{'expr': 'stage:pipeline_failure_ratio:rate5m', 'eval_time': '55m', 'exp_samples': [
    {'labels': 'stage:pipeline_failure_ratio:rate5m{stage="prod"}', 'value': 0.5}]}])

# ---------------------------------------------------------------- NoPipelineExecutions
case('requests are enqueued and no executor sample arrives', '1m', [
    s('pipelines_enqueued_total', D, '0+1x40'),
], [
    {'eval_time': '3m', 'alertname': 'NoPipelineExecutions', 'exp_alerts': []},
    {'eval_time': '20m', 'alertname': 'NoPipelineExecutions',
     'exp_alerts': [fires('NoPipelineExecutions', {'stage': 'prod'})]},
])
case('runs stop finishing while requests keep being enqueued', '1m', [
    s('pipelines_enqueued_total', D, '0+3x60'),
    s('pipeline_executions_total', E, '0+3x10 30x50', status='completed'),
], [
    {'eval_time': '30m', 'alertname': 'NoPipelineExecutions', 'exp_alerts': []},
    {'eval_time': '47m', 'alertname': 'NoPipelineExecutions',
     'exp_alerts': [fires('NoPipelineExecutions', {'stage': 'prod'})]},
])
case('nothing enqueued and nothing run for an hour (no signal matched) stays silent', '1m', [
    s('pipelines_enqueued_total', D, '12x70'),
    s('pipeline_executions_total', E, '12x70', status='completed'),
    s('faas_invocations_total', E, '12x70', trigger='pubsub'),
], [{'eval_time': '65m', 'alertname': 'NoPipelineExecutions', 'exp_alerts': []}])
case('runs keep finishing and NoPipelineExecutions stays silent', '1m', [
    s('pipelines_enqueued_total', D, '0+1x60'),
    s('pipeline_executions_total', E, '0+1x60', status='completed'),
], [{'eval_time': '50m', 'alertname': 'NoPipelineExecutions', 'exp_alerts': []}])

# ---------------------------------------------------------------- SignalConsumerLagHigh
def lag(values):
    # The buckets and, as the functions export it, the count (= the +Inf bucket).
    return [s('queue_consumer_lag_seconds_bucket', D, v, le=le) for le, v in values] + [
        s('queue_consumer_lag_seconds_count', D, v) for le, v in values if le == '+Inf']
case('signals waiting 10-25 s in the queue fire the lag alert', '1m', lag([
    ('1', '0x20'), ('10', '0x20'), ('25', '0+20x20'), ('+Inf', '0+20x20')]), [
    {'eval_time': '4m', 'alertname': 'SignalConsumerLagHigh', 'exp_alerts': []},
    {'eval_time': '10m', 'alertname': 'SignalConsumerLagHigh',
     'exp_alerts': [fires('SignalConsumerLagHigh', {'stage': 'prod'})]},
])
case('signals consumed within the 1-2.5 s batching window keep the lag alert silent', '1m', lag([
    ('0.5', '0x20'), ('1', '0x20'), ('2.5', '0+20x20'), ('5', '0+20x20'), ('+Inf', '0+20x20')]), [
    {'eval_time': '15m', 'alertname': 'SignalConsumerLagHigh', 'exp_alerts': []},
], [{'expr': 'stage:queue_consumer_lag_seconds:p95_5m', 'eval_time': '15m', 'exp_samples': [
    {'labels': 'stage:queue_consumer_lag_seconds:p95_5m{stage="prod"}', 'value': 2.425}]}])

case('recording rules give no series, not NaN, when nothing ran', '1m', [
    s('faas_invocations_total', E, '5x20', trigger='pubsub'),
    s('faas_errors_total', E, '0x20', trigger='pubsub'),
    s('pipeline_executions_total', E, '7x20', status='completed'),
    s('pipeline_executions_total', E, '1x20', status='failed'),
] + lag([('1', '3x20'), ('+Inf', '3x20')]), [
    {'eval_time': '15m', 'alertname': 'FunctionErrorRateHigh', 'exp_alerts': []},
], [{'expr': 'stage_job:faas_error_ratio:rate5m', 'eval_time': '15m', 'exp_samples': []},
    {'expr': 'stage:pipeline_failure_ratio:rate5m', 'eval_time': '15m', 'exp_samples': []},
    {'expr': 'stage:queue_consumer_lag_seconds:p95_5m', 'eval_time': '15m', 'exp_samples': []}])

# ---------------------------------------------------------------- SignalGenerationStopped
scans = lambda v, **kw: s('generator_scans_total', G, v, generator='scanner', **kw)
case('scans stop counting while metrics still arrive', '1m', [scans('1+1x10 11x20')], [
    {'eval_time': '15m', 'alertname': 'SignalGenerationStopped', 'exp_alerts': []},
    {'eval_time': '25m', 'alertname': 'SignalGenerationStopped',
     'exp_alerts': [fires('SignalGenerationStopped', {'job': G, 'stage': 'prod'})]},
])
case('scans stop and no sample arrives at all', '1m', [scans('1+1x10')], [
    {'eval_time': '25m', 'alertname': 'SignalGenerationStopped',
     'exp_alerts': [fires('SignalGenerationStopped', {'job': G})]},
])
case('scans go on across a counter reset (a collector restart) and the alert stays silent', '1m',
     [scans('1+1x15 1+1x20')], [
    {'eval_time': '30m', 'alertname': 'SignalGenerationStopped', 'exp_alerts': []},
])

# ---------------------------------------------------------------- NoSignalsGenerated
case('scans run for two hours without a signal', '5m', [
    scans('5+5x40'),
    s('signals_generated_total', G, '1+1x4 5x36', generator='rsi_generator', signal_type='rsi_oversold', source='rsi'),
], [
    {'eval_time': '1h30m', 'alertname': 'NoSignalsGenerated', 'exp_alerts': []},
    {'eval_time': '3h', 'alertname': 'NoSignalsGenerated',
     'exp_alerts': [fires('NoSignalsGenerated', {'job': G, 'stage': 'prod'})]},
])
case('signals keep coming and NoSignalsGenerated stays silent', '5m', [
    scans('5+5x40'),
    s('signals_generated_total', G, '1+1x40', generator='macd_generator', signal_type='macd_bullish', source='macd'),
], [{'eval_time': '3h', 'alertname': 'NoSignalsGenerated', 'exp_alerts': []}])

# ---------------------------------------------------------------- DeadLetterQueueNotEmpty
case('a message in the signals DLQ for 5 minutes', '1m', [
    s('dlq_depth', G, '0x5 2x20', queue='signals'),
    s('dlq_depth', G, '0x25', queue='executions'),
], [
    {'eval_time': '8m', 'alertname': 'DeadLetterQueueNotEmpty', 'exp_alerts': []},
    {'eval_time': '15m', 'alertname': 'DeadLetterQueueNotEmpty',
     'exp_alerts': [fires('DeadLetterQueueNotEmpty', {'queue': 'signals', 'stage': 'prod'}, '2')]},
])
case('empty DLQs stay silent', '1m', [
    s('dlq_depth', G, '0x25', queue='signals'),
    s('dlq_depth', G, '0x25', queue='executions'),
], [{'eval_time': '20m', 'alertname': 'DeadLetterQueueNotEmpty', 'exp_alerts': []}])

header = '''# promtool test rules infra/observability/tests/alerts.test.yml
#
# Unit tests of ../rules/alerts.yml: for every alert, cases where it fires and where it stays
# silent (including the ones the rules were changed for: lag within the batching window, a
# failure rate on too few runs, no executions when nothing was enqueued), on series with the
# labels the collector path stores (job = service.name, stage, faas_name, cloud_provider,
# cloud_region, then the metric's own labels; `instance` is aggregated away before storage).
# This file lives outside rules/ on purpose: Prometheus loads rules/*.yml, and a test file there
# would make it reject the whole rule set.
#
# Generated by generate_alert_tests.py (the cases are there): edit that file and run it.\n# Expected annotations are compared verbatim; they come from the rules' own annotations.

'''
body = yaml.safe_dump({'rule_files': ['../rules/alerts.yml'], 'evaluation_interval': '1m', 'tests': tests},
                      sort_keys=False, width=1000, allow_unicode=True)
open('infra/observability/tests/alerts.test.yml', 'w').write(header + body)
