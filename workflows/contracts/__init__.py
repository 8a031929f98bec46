"""Data that crosses Temporal: workflow inputs, update arguments, query results, activity
arguments. Ids and clinical facts only; never names, birth dates or contact details.

Plain dataclasses of JSON-friendly fields (dates as ISO strings) so payloads stay readable after
decryption and stable across versions: add fields with defaults, never rename. The JSON converter
records no module path, so a type may move between these modules without touching saved histories.

One module per workflow, holding what that workflow takes, answers and hands its activities:
participant (with its daily draw), screening, results (the lab results a screening files),
medication, disclosure, selection (verifiable selection periods) and audit; and what several
workflows share: errors (the ApplicationError types the API maps), alerts (raised for staff) and
delivery (one delivery attempt, of a disclosure or a selection notice). Importers name the module
that owns the type: nothing is re-exported here.
"""
