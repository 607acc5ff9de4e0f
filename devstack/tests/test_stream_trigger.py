"""The stream trigger's reading of a ReportBatchItemFailures response, as Lambda reads it for
stream sources: retry from the lowest reported record; an invalid report fails the batch."""

from devstack.stream_trigger import first_failed


def batch(*seqs: str) -> list[dict]:
    return [{"dynamodb": {"SequenceNumber": s}} for s in seqs]


def test_no_report_or_an_empty_one_means_the_whole_batch_is_done():
    b = batch("1", "2", "3")
    assert first_failed(None, b) == 3
    assert first_failed({}, b) == 3
    assert first_failed({"batchItemFailures": []}, b) == 3


def test_the_batch_restarts_at_the_lowest_reported_record():
    b = batch("1", "2", "3", "4")
    report = {"batchItemFailures": [{"itemIdentifier": "4"}, {"itemIdentifier": "2"}]}
    assert first_failed(report, b) == 1


def test_a_report_naming_no_record_of_the_batch_fails_all_of_it():
    b = batch("1", "2")
    assert first_failed({"batchItemFailures": [{"itemIdentifier": "9"}]}, b) == 0
    assert first_failed({"batchItemFailures": [{"itemIdentifier": None}]}, b) == 0
    assert first_failed({"batchItemFailures": "2"}, b) == 0
