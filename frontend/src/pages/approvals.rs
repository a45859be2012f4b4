//! The approval queue: requests the signed-in approver may decide now.

use std::time::Duration;

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{self, CommentBody, RequestDetail, RequestPage};
use crate::components::{ErrorBox, Load, Loading, load};
use crate::format::{human_minutes, when};
use crate::pages::requests::every;
use crate::session::use_session;

#[component]
pub fn Approvals() -> impl IntoView {
    let session = use_session();
    let page: RwSignal<Load<RequestPage>> = RwSignal::new(Load::Loading);
    let fetch = move || {
        let token = session.bearer();
        load(page, async move {
            api::get(
                "/api/v1/requests?awaiting_my_decision=true&limit=100",
                &token,
            )
            .await
        });
    };
    fetch();
    every(Duration::from_secs(10), fetch);
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    view! {
        <section class="card">
            <h1>"Waiting for my decision"</h1>
            {move || error.get().map(|e| view! { <ErrorBox message=e/> })}
            {move || match page.get() {
                Load::Loading => view! { <Loading/> }.into_any(),
                Load::Failed(e) => view! { <ErrorBox message=e/> }.into_any(),
                Load::Ready(p) if p.items.is_empty() => view! { <p class="empty">"Nothing to decide."</p> }.into_any(),
                Load::Ready(p) => view! {
                    <ul class="queue">{p.items.into_iter().map(|r| {
                        let comment = RwSignal::new(String::new());
                        let decide = move |id: String, verb: &'static str| {
                            let token = session.bearer();
                            let body = CommentBody { comment: Some(comment.get_untracked()).filter(|c| !c.trim().is_empty()) };
                            leptos::task::spawn_local(async move {
                                match api::post::<RequestDetail>(&format!("/api/v1/requests/{id}/{verb}"), &token, &body).await {
                                    Ok(_) => { error.set(None); fetch(); }
                                    Err(e) => error.set(Some(e.to_string())),
                                }
                            });
                        };
                        let (a, b) = (r.id.clone(), r.id.clone());
                        view! {
                            <li class="card inner" data-request=r.id.clone()>
                                <div class="head">
                                    <strong>{r.requester_name.clone().unwrap_or(r.requester.clone())}</strong>
                                    " asks for " <strong>{human_minutes(r.duration_minutes)}</strong>
                                    " in " <strong>{r.environment.clone()}</strong>
                                    " · " {when(&r.created_at)}
                                    " · " <A href=format!("/requests/{}", r.id)>"details"</A>
                                </div>
                                <dl class="facts">
                                    <dt>"For"</dt><dd>{r.subject_ids.join(", ")}</dd>
                                    <dt>"Instances"</dt><dd class="mono">{r.instance_ids.join(", ")}</dd>
                                    <dt>"Reason"</dt><dd>{r.reason.clone()}</dd>
                                    <dt>"Ticket"</dt><dd>{r.ticket.clone().unwrap_or_else(|| "—".into())}</dd>
                                </dl>
                                <div class="actions">
                                    <label class="grow">"Comment (required to reject)"
                                        <input name="comment" prop:value=move || comment.get()
                                            on:input=move |ev| comment.set(event_target_value(&ev))/></label>
                                    <button class="primary" on:click=move |_| decide(a.clone(), "approve")>"Approve"</button>
                                    <button class="danger" on:click=move |_| decide(b.clone(), "reject")>"Reject"</button>
                                </div>
                            </li>
                        }
                    }).collect_view()}</ul>
                }.into_any(),
            }}
        </section>
    }
}
