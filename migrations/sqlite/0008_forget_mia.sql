-- 0008_forget_mia: a forget that names a held-out reference dataset records its verification (issue 17):
-- before and after the reset, the ROC AUC of a loss-threshold membership-inference attack separating the
-- forgotten training examples from the held-out ones, with accuracy on the forgotten rows and on the rest.
-- JSON text; NULL for forgets without a reference dataset (and those recorded before this migration).
ALTER TABLE forget_audits ADD COLUMN verification text;
