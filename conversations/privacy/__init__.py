"""Who may see personal data, and masking for those who may not: the one policy between the data
and the pages.

- masking.py: what personal data is and how it is masked (pure functions over any shape);
- viewer.py: the viewer of the current request (the permission `conversations.view_pii`,
  SUPPORT_MAX_AGE_DAYS), set by the one decorator stack every view wears;
- sources.py: the only doors views get data through: the API client, the store's queries and
  search, each answer masked for the viewer (tests/test_privacy.py checks no view goes around them).
"""
