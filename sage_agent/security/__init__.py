"""Security and quality audits: advisor-compatible lints, RLS coverage, impersonation proofs, schema audit,
checklist checks. Used by sage_agent.ops.security."""
