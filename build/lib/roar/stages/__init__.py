"""The stages: one thin Hydra app each (roar-train, roar-attribute, roar-mask, roar-eval, roar-report),
the chain (roar-pipeline), and the sweeper that checks a sweep before it launches (preflight).
No stage imports another: each calls the library (roar.training, roar.attribution, roar.masking,
roar.evaluate, roar.report), which finds every artifact through roar.store's keys."""
