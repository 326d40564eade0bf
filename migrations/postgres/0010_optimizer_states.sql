-- 0010_optimizer_states (PostgreSQL): the optimizer's statistics (RMSprop's mean squares, Adam's moments
-- and step count) kept with the version a train job wrote, taken when the version's weights were
-- (the best-validation-loss epoch). A follow-on train job with "continue_optimizer": true starts
-- from them instead of zero statistics, so a long run split into jobs trains as one run would.
-- Deleted with their version's model; `state` is the engine's OptimizerState as JSON.
CREATE TABLE optimizer_states (
    model_id    text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version     bigint NOT NULL,
    kind        text NOT NULL,
    state       bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (model_id, version)
);
