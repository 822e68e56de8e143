//! NOT_FOUND from one node is not the cluster's answer: a node that has not
//! applied the latest catalog entries yet does not know a queue created a
//! moment ago. Every request that walks the candidate nodes asks another one
//! before it believes "no such queue".

use crate::Error;

/// The NOT_FOUND of a round over the candidate nodes, held until another
/// node answers.
#[derive(Debug, Default)]
pub(crate) struct SecondOpinion {
    held: Option<Error>,
}

impl SecondOpinion {
    /// Takes a failed attempt's error. `None`: a first NOT_FOUND, held; ask
    /// the next node. `Some(e)`: for the caller to act on, either a NOT_FOUND
    /// that a second node agreed with (not retryable, so it ends the request)
    /// or any other failure.
    pub(crate) fn review(&mut self, e: Error) -> Option<Error> {
        match e {
            Error::NotFound(_) if self.held.is_none() => {
                self.held = Some(e);
                None
            }
            e => Some(e),
        }
    }

    /// The held NOT_FOUND once the round ran out of nodes before another one
    /// answered: then the one answer there is stands.
    pub(crate) fn unanswered(&mut self) -> Option<Error> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> Error {
        Error::NotFound("queue 'q' does not exist".into())
    }

    #[test]
    fn a_first_not_found_is_held_and_a_second_is_believed() {
        let mut opinion = SecondOpinion::default();
        assert_eq!(opinion.review(not_found()), None);
        assert_eq!(opinion.review(not_found()), Some(not_found()));
        assert!(
            !not_found().is_retryable(),
            "a confirmed NOT_FOUND ends the call"
        );
    }

    #[test]
    fn other_failures_pass_through_and_the_held_answer_stands_alone() {
        let mut opinion = SecondOpinion::default();
        let down = Error::Connect("refused".into());
        assert_eq!(opinion.review(down.clone()), Some(down.clone()));
        assert_eq!(opinion.unanswered(), None);
        assert_eq!(opinion.review(not_found()), None);
        assert_eq!(opinion.review(down.clone()), Some(down));
        assert_eq!(opinion.unanswered(), Some(not_found()));
        assert_eq!(opinion.unanswered(), None);
    }
}
