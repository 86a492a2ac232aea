"""The ``taml-daily`` pipeline (DESIGN.md "The daily run").

    resolve-date ─ ingest ─ validate ─┬─ passed ─ features ─ train ─ evaluate ─┬─ deploy (only if blessed)
                                      │                                        └─ monitor
                                      └─ failed ─ monitor (the day that needs a report most)

Caching is off for every step. KFP keys a cached result on a task's parameters, but what these
steps read are files: raw logs that land late (validate for D fails until D+1 is there), the
production alias (train, evaluate, deploy, monitor). A cache hit would replay yesterday's verdict
on today's files, or skip a side effect (features materializes the online store). Only
resolve-date, a pure function of its parameters, may cache. (No postponed annotations here: KFP
reads the parameter types at definition time.)
"""

from kfp import dsl

from pipelines.components import make_components
from pipelines.runtime import config_parameter
from taml.core.config import Config

PIPELINE_NAME = "taml-daily"


def build_pipeline(config: Config):
    """The pipeline for ``config``.

    ``config`` fixes what KFP must know before a run starts (image, train resources, schedule
    lag) and is the default of the ``config`` parameter: the resolved configuration every task
    validates and runs with. A run may pass another one (``taml submit`` passes the one its
    command line resolved); the compile-time settings above stay as compiled.
    """
    c = make_components(config.pipeline.image)
    p = config.pipeline

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Daily TAML CTR/CVR: ingest, validate, features, train, gate, deploy, monitor.",
    )
    def taml_daily(
        date: str = "",
        schedule_time: str = "",
        config: str = config_parameter(config),
    ):
        day = c["resolve_date"](date=date, schedule_time=schedule_time, lag_days=p.schedule_lag_days)
        day.set_display_name("resolve date")
        common = dict(config=config, date=day.output)
        ingest = c["ingest"](**common)
        ingest.set_caching_options(False)
        validate = c["validate"](**common).after(ingest)
        validate.set_caching_options(False)
        with dsl.If(validate.outputs["passed"] == True, name="validation-passed"):  # noqa: E712
            features = c["features"](**common)
            features.set_caching_options(False)
            train = c["train"](**common).after(features)
            train.set_caching_options(False)
            train.set_cpu_limit(p.train_cpu).set_memory_limit(p.train_memory)
            if p.train_accelerator_count > 0:
                train.set_accelerator_type(p.train_accelerator).set_accelerator_limit(
                    p.train_accelerator_count
                )
            # Evaluate runs also when nothing was trained: it writes the predictions of the model
            # that served D, which the monitor reads, and then blesses nothing.
            evaluate = c["evaluate"](**common, candidate=train.outputs["candidate"])
            evaluate.set_caching_options(False)
            # Deploy runs after every evaluate and skips a candidate that was not blessed itself,
            # recording why: no dsl.If on a sibling's output, which kfp.local cannot evaluate
            # inside a sub-DAG (it read as False, and deploy never ran).
            deploy = c["deploy"](
                **common, candidate=train.outputs["candidate"], blessing=evaluate.outputs["blessing"]
            )
            deploy.set_caching_options(False)
            monitor = c["monitor"](**common, validation_failed=False).after(evaluate)
            monitor.set_caching_options(False)
        with dsl.Else(name="validation-failed"):
            failed = c["monitor"](**common, validation_failed=True)
            failed.set_caching_options(False)

    return taml_daily
