//! Where a session's graph runs: from the GPUs Spark gave the task to TensorFlow's session settings.
//!
//! TensorFlow maps its `/device:GPU:N` to CUDA ids once per process and refuses a later session whose
//! `visible_device_list` maps them otherwise (tensorflow#19083). So every session of an executor sees the same list,
//! the executor's GPUs, and a task's session places its graph on the task's own GPU within it: two tasks of one
//! executor holding GPUs 0 and 1 get sessions on `/device:GPU:0` and `/device:GPU:1` of one mapping.

use spindle_proto::spindle::ModelConfig;

use crate::error::{Error, Result};

/// A session's device settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The task's GPUs (Spark's ids), named in errors.
    pub task_gpus: Vec<String>,
    /// The session's `visible_device_list`: the executor's GPUs; empty: TensorFlow's default.
    pub visible_gpus: Vec<String>,
    /// The default device of the graph's ops; empty: where TensorFlow's SavedModel loader puts them.
    pub device: String,
    /// How many GPUs TensorFlow must see for `device` to be real (the task's GPU's index + 1); 0 without GPUs.
    pub gpus_needed: usize,
}

impl Placement {
    /// The placement `config` asks for. A task GPU that is not among the executor's is an error naming both.
    pub fn of(config: &ModelConfig) -> Result<Placement> {
        let task = &config.gpu_addresses;
        let Some(first) = task.first() else {
            // A task holding no GPU on an executor that has some runs on the CPU, in the executor's mapping: a session
            // with TensorFlow's default mapping would break the GPU tasks' sessions after it (and take every GPU's memory).
            let device = if config.device.is_empty() && !config.executor_gpus.is_empty() {
                "/device:CPU:0".to_string()
            } else {
                config.device.clone()
            };
            return Ok(Placement {
                visible_gpus: config.executor_gpus.clone(),
                device,
                ..Default::default()
            });
        };
        let visible = if config.executor_gpus.is_empty() {
            task.clone()
        } else {
            config.executor_gpus.clone()
        };
        if let Some(missing) = task.iter().find(|g| !visible.contains(g)) {
            return Err(Error::Model(format!(
                "the task holds GPU {missing} (Spark's task resources), which is not among this executor's GPUs {}",
                visible.join(",")
            )));
        }
        // A graph runs on one device: a task holding several GPUs runs on its first (the others stay visible to it).
        let index = visible.iter().position(|g| g == first).unwrap_or(0);
        Ok(Placement {
            task_gpus: task.clone(),
            visible_gpus: visible,
            device: format!("/device:GPU:{index}"),
            gpus_needed: index + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(task: &[&str], executor: &[&str]) -> ModelConfig {
        ModelConfig {
            gpu_addresses: task.iter().map(|s| s.to_string()).collect(),
            executor_gpus: executor.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn without_gpus_nothing_changes() {
        assert_eq!(
            Placement::of(&config(&[], &[])).unwrap(),
            Placement::default()
        );
    }

    #[test]
    fn a_task_without_gpus_on_an_executor_with_some_runs_on_the_cpu_in_the_executors_mapping() {
        let p = Placement::of(&config(&[], &["0", "1"])).unwrap();
        assert_eq!(p.visible_gpus, vec!["0", "1"]);
        assert_eq!((p.device.as_str(), p.gpus_needed), ("/device:CPU:0", 0));
        assert!(p.task_gpus.is_empty());
    }

    #[test]
    fn tasks_of_one_executor_share_its_list_and_run_on_their_own_gpu() {
        let first = Placement::of(&config(&["4"], &["4", "7"])).unwrap();
        let second = Placement::of(&config(&["7"], &["4", "7"])).unwrap();
        assert_eq!(first.visible_gpus, second.visible_gpus);
        assert_eq!(
            (first.device.as_str(), second.device.as_str()),
            ("/device:GPU:0", "/device:GPU:1")
        );
        assert_eq!((first.gpus_needed, second.gpus_needed), (1, 2));
    }

    #[test]
    fn an_unknown_executor_list_is_the_tasks_own() {
        let p = Placement::of(&config(&["3", "5"], &[])).unwrap();
        assert_eq!(p.visible_gpus, vec!["3", "5"]);
        assert_eq!(p.device, "/device:GPU:0");
    }

    #[test]
    fn a_task_gpu_outside_the_executor_is_named() {
        let e = Placement::of(&config(&["2"], &["0", "1"])).unwrap_err();
        assert!(e.to_string().contains("GPU 2"), "{e}");
        assert!(e.to_string().contains("executor's GPUs 0,1"), "{e}");
    }
}
