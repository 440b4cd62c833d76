"""What ``lrlab.tune._optuna`` relies on in Optuna, pinned: run this against a new Optuna
release before widening the ``optuna<6`` pin."""

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from lrlab.tune import _optuna, open_storage


@pytest.fixture
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = open_storage(str(tmp_path / "o.db"))
    s = optuna.create_study(storage=rdb, study_name="pin")
    s.enqueue_trial({"lr": 0.5})
    s.enqueue_trial({"lr": 0.25})
    return s


def test_an_enqueued_trial_carries_its_params_until_it_is_suggested(study):
    t = study.get_trials(deepcopy=False)[0]
    assert t.state == TrialState.WAITING and t.params == {}
    assert _optuna.fixed_params(t) == {"lr": 0.5}


def test_a_waiting_trial_is_claimed_once_and_suggests_its_enqueued_value(study):
    t = study.get_trials(deepcopy=False)[0]
    assert _optuna.claim(study, t) is True
    assert _optuna.claim(study, t) is False  # already running
    assert study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING
    trial = _optuna.attach(study, t)
    assert trial.suggest_float("lr", 1e-3, 1.0, log=True) == 0.5
    _optuna.set_user_attr(study, t, "run", {"final_loss": 1.0})
    study.tell(trial, 1.0)
    done = _optuna.by_number(study, t.number)
    assert done.state == TrialState.COMPLETE and done.params == {"lr": 0.5}
    assert done.user_attrs["run"] == {"final_loss": 1.0}
    assert _optuna.claim(study, done) is False  # finished trials are never claimed


def test_a_running_trial_can_be_failed_and_an_unknown_number_is_a_value_error(study):
    t = study.get_trials(deepcopy=False)[1]
    assert _optuna.claim(study, t)
    _optuna.fail(study, t)
    assert _optuna.by_number(study, t.number).state == TrialState.FAIL
    with pytest.raises(ValueError, match="no trial 99"):
        _optuna.by_number(study, 99)


def test_the_public_ask_with_fixed_distributions_agrees_with_the_adapter(study):
    # the public path lrlab does not use (it creates a trial when none waits), kept in step
    trial = study.ask(fixed_distributions={"lr": FloatDistribution(1e-3, 1.0, log=True)})
    assert trial.params == {"lr": 0.5}
