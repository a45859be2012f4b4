//! One request: its status per subject × instance, the audit trail as a timeline, and what the
//! signed-in person may do — collect credentials, approve or reject, cancel, end access.

use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{self, CommentBody, Credentials, RequestDetail};
use crate::components::{CopyButton, ErrorBox, Load, Loading, Status, load};
use crate::format::{countdown, human_minutes, is_final, when};
use crate::pages::requests::{every, ticking_now};
use crate::session::use_session;

#[component]
pub fn RequestPage() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let detail: RwSignal<Load<RequestDetail>> = RwSignal::new(Load::Loading);
    let fetch = move || {
        let token = session.bearer();
        let path = format!("/api/v1/requests/{}", id());
        load(detail, async move { api::get(&path, &token).await });
    };
    fetch();
    // Follow a request that is still moving.
    every(Duration::from_secs(3), move || {
        if let Load::Ready(d) = detail.get_untracked()
            && is_final(&d.request.status)
        {
            return;
        }
        fetch();
    });
    let now = ticking_now();
    let credentials: RwSignal<Option<Credentials>> = RwSignal::new(None);
    let action_error: RwSignal<Option<String>> = RwSignal::new(None);
    let comment = RwSignal::new(String::new());

    let act = move |verb: &'static str| {
        let token = session.bearer();
        let path = format!("/api/v1/requests/{}/{verb}", id());
        let text = comment.get_untracked();
        let body = CommentBody {
            comment: Some(text).filter(|c| !c.trim().is_empty()),
        };
        action_error.set(None);
        leptos::task::spawn_local(async move {
            match api::post::<RequestDetail>(&path, &token, &body).await {
                Ok(d) => {
                    comment.set(String::new());
                    detail.set(Load::Ready(d));
                }
                Err(e) => action_error.set(Some(e.to_string())),
            }
        });
    };
    let collect = move |_| {
        let token = session.bearer();
        let path = format!("/api/v1/requests/{}/credentials", id());
        action_error.set(None);
        leptos::task::spawn_local(async move {
            match api::get::<Credentials>(&path, &token).await {
                Ok(c) => {
                    credentials.set(Some(c));
                    // The collection is in the audit trail now, and there is nothing left to collect
                    // (unless the page was left meanwhile).
                    if detail.try_with_untracked(|_| ()).is_some() {
                        fetch();
                    }
                }
                Err(e) => action_error.set(Some(e.to_string())),
            }
        });
    };

    view! {
        {move || match detail.get() {
            Load::Loading => view! { <section class="card"><Loading/></section> }.into_any(),
            Load::Failed(e) => view! { <section class="card"><ErrorBox message=e/></section> }.into_any(),
            Load::Ready(d) => {
                let r = d.request.clone();
                let p = d.permissions.clone();
                let status = r.status.clone();
                let expires = r.expires_at;
                view! {
                    <section class="card">
                        <h1>"Request " <span class="mono">{r.id[..8].to_owned()}</span> " " <Status status=r.status.clone()/></h1>
                        <dl class="facts">
                            <dt>"Environment"</dt><dd>{r.environment.clone()}</dd>
                            <dt>"Requested by"</dt><dd>{r.requester_name.clone().unwrap_or(r.requester.clone())} " · " {when(&r.created_at)}</dd>
                            <dt>"For"</dt><dd>{r.subject_ids.join(", ")}</dd>
                            <dt>"Duration"</dt><dd>{human_minutes(r.duration_minutes)}</dd>
                            <dt>"Reason"</dt><dd>{r.reason.clone()}</dd>
                            <dt>"Ticket"</dt><dd>{r.ticket.clone().unwrap_or_else(|| "—".into())}</dd>
                            {r.decided_by.clone().map(|by| view! {
                                <dt>"Decided by"</dt><dd>{by} {r.decision_comment.clone().map(|c| view! { ": " <q class="comment">{c}</q> })}</dd>
                            })}
                            {r.ended_by.clone().map(|by| view! {
                                <dt>"Ended by"</dt>
                                <dd>{by} {(r.status == "granting").then_some(" — the accounts are removed as soon as they exist")}</dd>
                            })}
                            <dt>"Access ends"</dt>
                            <dd class="mono countdown">{move || match expires {
                                Some(end) if status == "active" => format!("{} (in {})", when(&end), countdown(now.get(), end)),
                                Some(end) => when(&end),
                                None => "when granted: the duration starts then".into(),
                            }}</dd>
                        </dl>
                        {move || action_error.get().map(|e| view! { <ErrorBox message=e/> })}
                        <div class="actions">
                            {(p.approve || p.revoke || p.cancel).then(|| view! {
                                <label class="grow">"Comment"
                                    <input name="comment" prop:value=move || comment.get()
                                        on:input=move |ev| comment.set(event_target_value(&ev))/></label>
                            })}
                            {p.approve.then(|| view! {
                                <button class="primary" on:click=move |_| act("approve")>"Approve"</button>
                                <button class="danger" on:click=move |_| act("reject")>"Reject"</button>
                            })}
                            {p.cancel.then(|| view! { <button class="secondary" on:click=move |_| act("cancel")>"Cancel request"</button> })}
                            {p.revoke.then(|| view! { <button class="danger" on:click=move |_| act("revoke")>"End access now"</button> })}
                            {p.collect_credentials.then(|| view! { <button class="primary" on:click=collect>"Collect credentials"</button> })}
                        </div>
                    </section>
                    {move || credentials.get().map(|c| view! { <CredentialsCard creds=c/> })}
                    <section class="card">
                        <h2>"Access per person and instance"</h2>
                        <table class="grid">
                            <thead><tr><th>"Person"</th><th>"OS user"</th><th>"Instance"</th><th>"Status"</th><th>"Problem"</th></tr></thead>
                            <tbody>{d.grants.iter().map(|g| view! {
                                <tr><td>{g.subject.clone()}</td><td class="mono">{g.os_user.clone()}</td>
                                    <td>{g.instance_name.clone().unwrap_or_default()} " " <span class="mono">{g.instance_id.clone()}</span></td>
                                    <td><Status status=g.status.clone()/></td>
                                    <td class="why">{g.last_error.clone().unwrap_or_default()}</td></tr>
                            }).collect_view()}</tbody>
                        </table>
                    </section>
                    <section class="card">
                        <h2>"Audit trail"</h2>
                        <ol class="timeline">{d.events.iter().map(|e| view! {
                            <li data-action=e.action.clone()>
                                <time>{e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()}</time>
                                <strong>{e.action.replace('_', " ")}</strong>
                                " by " {e.actor.clone()}
                                {e.instance_id.clone().map(|i| view! { " on " <span class="mono">{i}</span> })}
                                {e.command_id.clone().map(|c| view! { " · command " <span class="mono">{c}</span> })}
                                {e.detail.get("comment").and_then(|c| c.as_str()).map(|c| view! { <q class="comment">{c.to_owned()}</q> })}
                                {e.detail.get("error").and_then(|c| c.as_str()).map(|c| view! { <div class="why">{c.to_owned()}</div> })}
                            </li>
                        }).collect_view()}</ol>
                    </section>
                }.into_any()
            }
        }}
    }
}

#[component]
fn CredentialsCard(creds: Credentials) -> impl IntoView {
    let href = creds
        .private_key
        .as_ref()
        .map(|k| format!("data:application/octet-stream,{}", api::q(k)));
    let file = creds
        .key_file
        .rsplit('/')
        .next()
        .unwrap_or("gatekeeper-key")
        .to_owned();
    view! {
        <section class="card creds">
            <h2>"Your credentials"</h2>
            <p class="warn">"Shown once: Gatekeeper no longer stores them. Save the key now."</p>
            {href.map(|h| view! {
                <p><a class="button primary" href=h download=file.clone() id="download-key">"Download private key"</a>
                   " then " <code>{format!("chmod 600 {}", creds.key_file)}</code></p>
            })}
            {(!creds.instances.is_empty()).then(|| view! {
                <h3>"SSH"</h3>
                <ul class="commands">{creds.instances.iter().map(|t| view! {
                    <li><span>{t.name.clone().unwrap_or_default()}</span>
                        <input readonly class="mono copy" aria-label="ssh command" value=t.ssh_command.clone().unwrap_or_default()
                            on:focus=|ev| { let _ = event_target::<web_sys::HtmlInputElement>(&ev).select(); }/>
                        <CopyButton text=t.ssh_command.clone().unwrap_or_default()
                            label=format!("copy the ssh command for {}", t.name.clone().unwrap_or_else(|| t.instance_id.clone()))/></li>
                }).collect_view()}</ul>
            })}
            {(!creds.windows.is_empty()).then(|| view! {
                <h3>"Remote Desktop"</h3>
                <ul class="commands">{creds.windows.iter().map(|w| {
                    let shown = RwSignal::new(false);
                    let password = w.password.clone();
                    view! {
                        <li><span>{w.name.clone().unwrap_or_default()} " " {w.private_ip.clone().unwrap_or_default()}</span>
                            <span class="mono">{w.username.clone()}</span>
                            <span class="mono secret">{move || if shown.get() { password.clone() } else { "••••••••••••".into() }}</span>
                            <button class="link" on:click=move |_| shown.update(|s| *s = !*s)>
                                {move || if shown.get() { "Hide" } else { "Reveal password" }}</button>
                            <CopyButton text=w.password.clone()
                                label=format!("copy the password for {}", w.name.clone().unwrap_or_else(|| w.instance_id.clone()))/></li>
                    }
                }).collect_view()}</ul>
            })}
        </section>
    }
}
