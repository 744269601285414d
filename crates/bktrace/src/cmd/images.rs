//! `bktrace images`: the external images a build will use, from its Dockerfile alone.

use std::io::{self, Write};
use std::process::ExitCode;

use dockerfile_analysis::{ImageUse, base_images};

use super::key_values;
use crate::ImagesArgs;
use crate::error::CliError;

/// `bktrace images`.
pub(crate) fn run(args: ImagesArgs) -> Result<ExitCode, CliError> {
    let build_args = key_values("--build-arg", &args.build_args, true)?;
    let path = match &args.file {
        Some(file) => file.clone(),
        None => {
            let upper = args.dir.join("Dockerfile");
            let lower = args.dir.join("dockerfile");
            if !upper.exists() && lower.exists() {
                lower
            } else {
                upper
            }
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CliError::Open {
        path: path.clone(),
        source,
    })?;
    let found = base_images(&text, build_args.iter().map(|(k, v)| (k, v))).map_err(|source| {
        CliError::Dockerfile {
            path: path.clone(),
            source,
        }
    })?;
    let images: Vec<&ImageUse> = if args.all_stages {
        found.images.iter().collect()
    } else {
        found
            .needed_by(args.target.as_deref())
            .map_err(CliError::Target)?
    };
    let shown = |reference: &str| -> Result<String, CliError> {
        Ok(if args.normalize {
            dockerfile_analysis::normalize(reference)?
        } else {
            reference.to_string()
        })
    };
    let mut out = io::stdout().lock();
    if args.json {
        let images = images
            .iter()
            .map(|image| {
                Ok(serde_json::json!({
                    "reference": shown(&image.reference)?,
                    "line": image.line,
                    "kind": image.kind.to_string(),
                    "stages": image.stages,
                    "uses": image.uses.iter().map(|u| serde_json::json!({
                        "line": u.line,
                        "kind": u.kind.to_string(),
                        "stage": found.stages.get(u.stage).map(|s| s.label()),
                    })).collect::<Vec<_>>(),
                }))
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        let syntax = match &found.syntax {
            Some(f) => serde_json::json!({ "reference": shown(&f.reference)?, "line": f.line }),
            None => serde_json::Value::Null,
        };
        let doc = serde_json::json!({ "syntax": syntax, "images": images });
        writeln!(out, "{doc}").map_err(CliError::Output)?;
    } else {
        if let Some(f) = &found.syntax {
            let line = f
                .line
                .map_or_else(|| "build-arg".to_string(), |l| format!("line {l}"));
            writeln!(out, "{}\t{line}\tsyntax\t-", shown(&f.reference)?)
                .map_err(CliError::Output)?;
        }
        for image in &images {
            writeln!(
                out,
                "{}\tline {}\t{}\t{}",
                shown(&image.reference)?,
                image.line,
                image.kind,
                image.stages.join(",")
            )
            .map_err(CliError::Output)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
