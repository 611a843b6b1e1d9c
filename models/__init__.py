"""Named model specs shipped with irt-bayes; installed as the ``irt_bayes.models`` resources."""
