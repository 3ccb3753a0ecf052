"""Publish dbt model changes to Amazon EventBridge.

Kept deliberately empty of imports: dbt imports every top-level ``dbt_*`` module on
each command (adapter plugin discovery), so anything heavy here slows down every
``dbt`` invocation of our users.
"""

__version__ = "0.2.0"
